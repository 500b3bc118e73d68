-- What walcast creates by itself when its role may (run by hand otherwise,
-- as a role that owns the tables). The column list on users keeps the
-- password hash, its history and the login counters inside the database:
-- they never enter the WAL stream walcast reads.
CREATE PUBLICATION walcast FOR TABLE
    members,
    donations,
    users (id, username, email, role, member_id, must_change_password,
           password_changed_at, locked_until, created_at, updated_at),
    settings;

-- The role walcast connects as needs REPLICATION (on managed services: for
-- example membership in rds_replication) and SELECT on the tables:
--   CREATE ROLE walcast LOGIN REPLICATION PASSWORD '...';
--   GRANT SELECT ON members, donations, users, settings TO walcast;
