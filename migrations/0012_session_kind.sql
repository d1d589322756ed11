-- What a sessions row is (issue 16): 'target' for USER+TARGET connections
-- (shell, exec, sftp, forwards through an SSH target, the nested half of
-- `ssh -J`), 'connection' for a plain USER connection (the menu, TCP
-- forwards to TCP targets, the outer half of `ssh -J`). Every
-- authenticated connection has its row from login on, so every live one
-- can be ended by its id from the CLI and the API.
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'target';
