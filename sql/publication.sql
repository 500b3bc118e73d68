-- The publication walcast creates by itself for the built-in GraceGiver
-- profile when its role may (run it by hand otherwise, as the tables' owner;
-- walcast refuses to start when an existing publication differs, and prints
-- the ALTER PUBLICATION that makes it match).
--
-- The column lists keep users.password_hash, its history, the login counters
-- and locked_until (a login throttle walcast does not read) and every
-- settings column nobody sees inside the database: they never enter the WAL
-- stream walcast reads. A list always includes the table's
-- replica identity (users.id, settings.singleton_id), or PostgreSQL would
-- refuse the application's UPDATEs. donations has REPLICA IDENTITY FULL (for
-- routing DELETEs to the donor), which PostgreSQL 15 does not allow with a
-- column list, so it is published whole.
CREATE PUBLICATION walcast FOR TABLE
    donations,
    members,
    settings (name, address, phone, email, tax_id, singleton_id),
    users (id, username, role, email, created_at, must_change_password, member_id);

-- The role walcast connects as needs REPLICATION (on managed services: for
-- example membership in rds_replication) and SELECT on the tables:
--   CREATE ROLE walcast LOGIN REPLICATION PASSWORD '...';
--   GRANT SELECT ON members, donations, users, settings TO walcast;
