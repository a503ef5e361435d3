-- Accounts of an identity provider (identity on): an external subject (the JWT claim, or the
-- trusted gateway's header) is one user of this service, created on first sight.
CREATE TABLE accounts (
    subject    TEXT        PRIMARY KEY CHECK (char_length(subject) BETWEEN 1 AND 255),
    user_id    BIGINT      NOT NULL UNIQUE REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Ids for users made on first sight. Other users (the demo data, tests, imports) are inserted
-- with ids of their own, so an id this gives may be taken: the adapter then moves the sequence
-- past the largest id and asks again.
CREATE SEQUENCE account_user_ids;
