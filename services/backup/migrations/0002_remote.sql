-- Where the backup's copy in an S3-compatible bucket is (s3://bucket/prefix/<backup id>/);
-- NULL when it has none (no bucket configured, or the upload failed).
ALTER TABLE backups ADD COLUMN remote_url text;
