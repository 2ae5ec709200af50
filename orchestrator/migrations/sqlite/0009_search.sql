-- Full-text search over job logs, task output and result notes (issue 19).
-- One row per line: of a job's file (`job_uuid`, `file`, `line` from 1;
-- written when the file is stored as an artifact, replaced when it is
-- stored again) or of a result's note (`result_id`, `line`; written with
-- the result, in its transaction). `item` and `at` (microseconds: when the
-- file was stored, the result's submit time) serve the filters; a result's
-- `job_uuid` is its first group. `body` is the line as stored (control
-- characters made spaces, cut at 2000 characters).

CREATE TABLE search_lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_uuid TEXT,
    file TEXT,
    result_id BIGINT REFERENCES results (id) ON DELETE CASCADE,
    line BIGINT NOT NULL,
    item TEXT,
    at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX search_lines_file ON search_lines (job_uuid, file);
CREATE INDEX search_lines_result ON search_lines (result_id);
CREATE INDEX search_lines_at ON search_lines (at, id);

-- FTS5 over `body`, its content read from search_lines (no second copy).
-- Words are runs of letters and digits, case-folded, accents kept: the
-- same words as the PostgreSQL index.
CREATE VIRTUAL TABLE search_fts USING fts5 (
    body,
    content = 'search_lines',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER search_lines_insert AFTER INSERT ON search_lines BEGIN
    INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER search_lines_delete AFTER DELETE ON search_lines BEGIN
    INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- The notes of results stored before this migration, each as one line.
INSERT INTO search_lines (job_uuid, file, result_id, line, item, at, body)
SELECT
    (SELECT g.uuid FROM results_groups rg JOIN groups g ON g.id = rg.group_id
      WHERE rg.result_id = r.id ORDER BY g.id LIMIT 1),
    NULL, r.id, 1,
    (SELECT d.value FROM result_data d WHERE d.result_id = r.id AND d.key = 'item'
      ORDER BY d.id LIMIT 1),
    r.submit_time, substr(r.note, 1, 2000)
FROM results r
WHERE r.note IS NOT NULL AND r.note <> '';
