"""ddip's Hydra configs (``ddip/conf/train.yaml`` and its groups), a package so an installed ddip finds them."""
