"""The entry points MLproject runs (experiment, loop, collect, train, recommend, ...), thin over the rooms beside them."""
