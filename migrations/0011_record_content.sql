-- Recording mode per target (issue 5): 1 = full (terminal output and
-- keystrokes in the cast, the default), 0 = metadata only (the cast holds
-- the session's markers -- command, exit status, resizes, signals -- and a
-- marker saying contents were not recorded; the chain and signed trailer
-- are written as usual). For bulk automation targets.
ALTER TABLE targets ADD COLUMN record_content INTEGER NOT NULL DEFAULT 1;
