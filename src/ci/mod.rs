//! CI splitting: `plan_doc` (the plan document: jobs, levels, needs, and its GitHub and GitLab
//! renderings; the result document a CI job leaves), `emit` (GitLab child pipelines and GitHub
//! workflows that run as written), `job_runner` (one job from its inputs, as
//! a CI job runs it), `merge` (results back into one run of the store).

pub mod emit;
pub mod inputs;
pub mod job_runner;
pub mod merge;
pub mod plan_doc;
