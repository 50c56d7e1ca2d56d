//! CI splitting: the plan document (jobs, levels, needs) and its GitHub and GitLab renderings,
//! and the result document a CI job leaves.

pub mod plan_doc;
