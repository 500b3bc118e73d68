-- The GraceGiver tables walcast tails by default (see README "Pointing an
-- existing database at walcast"). Column for column as the app has them.
-- Safe to run more than once.

CREATE TABLE IF NOT EXISTS members (
    id          text PRIMARY KEY,          -- a UUID string made by the app
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    telephone   text,
    address     text,
    city        text,
    state       text,
    zip         text,
    family_id   text,
    skills      text[] DEFAULT '{}',
    interests   text[] DEFAULT '{}',
    joined_at   timestamptz,
    created_at  timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS donations (
    id            serial PRIMARY KEY,
    member_id     text REFERENCES members(id) ON DELETE CASCADE,  -- null for a guest donation
    amount        numeric(12,2) NOT NULL,
    fund          text NOT NULL,
    notes         text,
    entered_by    text,
    donation_date timestamptz DEFAULT now()
);
-- The donor's audience (member:{member_id}) is a non-key column: DELETEs and
-- re-assignments can only be routed with the old row.
ALTER TABLE donations REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS users (
    id                    serial PRIMARY KEY,
    username              text UNIQUE NOT NULL,
    password_hash         text NOT NULL,
    email                 text,
    role                  text DEFAULT 'viewer',
    member_id             text REFERENCES members(id) ON DELETE SET NULL,
    must_change_password  boolean DEFAULT false,
    password_changed_at   timestamptz,
    password_history      jsonb DEFAULT '[]',
    failed_login_attempts integer DEFAULT 0,
    locked_until          timestamptz,
    last_login_at         timestamptz,
    created_at            timestamptz DEFAULT now(),
    updated_at            timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS settings (
    singleton_id boolean PRIMARY KEY DEFAULT true CHECK (singleton_id),
    name         text NOT NULL,
    address      text,
    phone        text,
    email        text,
    tax_id       text,
    created_at   timestamptz DEFAULT now(),
    updated_at   timestamptz DEFAULT now()
);
