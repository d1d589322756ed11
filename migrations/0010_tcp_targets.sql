-- TCP targets (issue 7): a target is either an SSH server the bastion logs in
-- to ('ssh', the default for every existing row) or a host:port it forwards
-- TCP connections to ('tcp': no host key, no credential). For a TCP target,
-- targets.capture_files means "keep the forwarded bytes both ways".
ALTER TABLE targets ADD COLUMN kind TEXT NOT NULL DEFAULT 'ssh';
