"""``python train.py ...`` is the ``ddip`` command (:mod:`ddip.cli`), for a checkout that is not installed."""

from ddip.cli import main

if __name__ == "__main__":
    main()
