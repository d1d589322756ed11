-- Per target: keep the contents of files moved over SFTP beside the recording.
ALTER TABLE targets ADD COLUMN capture_files BIGINT NOT NULL DEFAULT 0;
