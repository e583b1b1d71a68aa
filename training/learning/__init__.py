"""From a window of the service's logs and the public catalog to i2i lists: pairs, models, fitting, lists, offline figures."""
