"""One A/B day: serve a config, let the simulator play it, check its log and analyse the arms."""
