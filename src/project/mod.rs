//! The compose project: a staged loader ending in a typed model, the dependency graph, the config
//! hash and the pure planner.
