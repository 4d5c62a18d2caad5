-- chatvault: one role and one database per service.
--   role name = database name: storage, users, audit, backup, web, bot
--   roles have LOGIN and CREATEDB (tests create their own test_<uuid> databases).
--   No password is set here: scripts/stack.sh gives each role a random one of its own
--   (.state/secrets/postgres-<role>); elsewhere, set them with ALTER ROLE … PASSWORD.
--
-- Idempotent: safe to run again and again as a superuser with psql, e.g.
--   runuser -u postgres -- psql -v ON_ERROR_STOP=1 -f db-init/001-databases.sql
-- (scripts/stack.sh does this). Also works from the postgres:15 image's
-- /docker-entrypoint-initdb.d, which runs it with psql, so \gexec is available.
-- CREATE DATABASE cannot run inside a DO block or a transaction, hence \gexec.

-- Roles: create when missing, otherwise (re)assert their attributes.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['storage', 'users', 'audit', 'backup', 'web', 'bot'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN CREATEDB', r);
        ELSE
            EXECUTE format('ALTER ROLE %I LOGIN CREATEDB', r);
        END IF;
    END LOOP;
END
$$;

-- Commits of chatvault's roles do not wait for the WAL flush: a crash of PostgreSQL may
-- lose the last few hundred milliseconds of projection commits, which the projections
-- re-apply from Kafka (offsets are stored in the same transactions), and never corrupts
-- anything (fsync stays on). Set on the roles, not the cluster, so other databases of a
-- shared cluster keep their settings.
ALTER ROLE storage SET synchronous_commit = off;
ALTER ROLE users SET synchronous_commit = off;
ALTER ROLE audit SET synchronous_commit = off;
ALTER ROLE backup SET synchronous_commit = off;

-- Databases, each owned by its role.
SELECT format('CREATE DATABASE %I OWNER %I', d, d)
FROM unnest(ARRAY['storage', 'users', 'audit', 'backup', 'web', 'bot']) AS d
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d)
\gexec

-- Databases that already existed: make sure the owner is right.
SELECT format('ALTER DATABASE %I OWNER TO %I', d.datname, d.datname)
FROM pg_catalog.pg_database AS d
WHERE d.datname IN ('storage', 'users', 'audit', 'backup', 'web', 'bot')
  AND pg_catalog.pg_get_userbyid(d.datdba) <> d.datname
\gexec
