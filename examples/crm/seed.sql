-- The demo CRM: 3 companies (tenants), 30 accounts and 240 deals, the same rows every time.
--     psql -d crm -f examples/crm/seed.sql
DROP TABLE IF EXISTS deals;
DROP TABLE IF EXISTS accounts;

CREATE TABLE accounts (
    id integer PRIMARY KEY,
    company_id integer NOT NULL,
    name text NOT NULL,
    region text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE deals (
    id integer PRIMARY KEY,
    company_id integer NOT NULL,
    account_id integer NOT NULL REFERENCES accounts (id),
    title text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('open', 'won', 'lost')),
    amount numeric(12, 2) NOT NULL,
    closed_on date,
    updated_at timestamptz NOT NULL
);

INSERT INTO accounts
SELECT
    id,
    1 + id % 3,
    'Account ' || id,
    (ARRAY['north', 'south', 'east', 'west'])[1 + id % 4],
    timestamptz '2025-01-01 00:00:00+00' + id * interval '1 hour',
    timestamptz '2025-01-01 00:00:00+00' + id * interval '1 hour'
FROM generate_series(1, 30) AS g (id);

INSERT INTO deals
SELECT
    g.id,
    a.company_id,
    a.id,
    'Deal ' || g.id,
    (ARRAY['open', 'open', 'won', 'won', 'lost'])[1 + g.id % 5],
    round((g.id * 137) % 5000 + 0.25 * (g.id % 4), 2),
    CASE WHEN g.id % 5 >= 2 THEN date '2025-02-01' + g.id % 28 END,
    timestamptz '2025-01-02 00:00:00+00' + g.id * interval '1 minute'
FROM generate_series(1, 240) AS g (id)
JOIN accounts AS a ON a.id = 1 + (g.id * 7) % 30;
