//! Guest agent: protocol types shared with the orchestrator, and the task runner.
