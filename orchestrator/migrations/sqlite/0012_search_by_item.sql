-- A search about one item reads that item's lines, newest first, and
-- checks each against the query, instead of every match of a common word
-- (issue 19's bench: a word in 1 line of 20, over 10 million lines).
CREATE INDEX search_lines_item ON search_lines (item, id);
