-- The commit a queued job's task was resolved to from the git cache before
-- its VM booted (issue 7): the job runs that commit whatever the branch
-- does later, and the API shows it. NULL for tasks from a local folder.
-- The same statement in both dialects.

ALTER TABLE jobs ADD COLUMN git_commit TEXT;
