-- The dashboard's job list filters by one column and pages newest first:
-- one index per filter, each ending in the page order, so a page is one
-- index range read whatever the number of jobs.
CREATE INDEX jobs_item_created ON jobs (item, created_at);
CREATE INDEX jobs_state_created ON jobs (state, created_at);
CREATE INDEX jobs_formula_created ON jobs (formula, created_at);
CREATE INDEX jobs_host_created ON jobs (host, created_at);
