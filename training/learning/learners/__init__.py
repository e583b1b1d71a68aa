"""Learners: each one module with one job, from a window of the service's logs and the
public catalog to i2i lists (and any policy parameters it estimates), with its own YAML
config. `base` is the interface; `embedding` (the project's), `cooccurrence`, `item2vec`
and `als` (the standard peers) implement it; a learner from outside the project is named
by its import path (`mypackage.module:MyLearner`)."""
