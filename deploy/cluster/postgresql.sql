-- The database a fieldcast cluster shares (run as the postgres superuser:
-- psql -f deploy/cluster/postgresql.sql). fieldcast creates its tables on
-- start (migrations), so the role only needs to own the database.
CREATE ROLE fieldcast LOGIN;
CREATE DATABASE fieldcast OWNER fieldcast ENCODING 'UTF8' TEMPLATE template0;
-- Then let the nodes in, in pg_hba.conf (a password or a certificate in
-- production rather than trust):
--   host fieldcast fieldcast 10.0.0.0/24 scram-sha-256
-- Each node keeps a pool of connections; max_connections must allow
-- nodes x pool size plus room for psql and backups.
