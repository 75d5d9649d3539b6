-- Reporting tables: the latest state per key, with the source position that produced it.
-- A deleted row stays as a tombstone (_deleted) so an older change replayed later cannot
-- bring it back; the *_current views are what reports read.
CREATE TABLE IF NOT EXISTS {namespace}.orders (
    order_id          bigint PRIMARY KEY,
    customer_id       bigint,
    status            text,
    amount            double precision,
    currency          text,
    channel           text,
    customer_segment  text,
    customer_country  text,
    updated_at        timestamptz,
    event_id          text,
    event_time        timestamptz,
    _version          bigint  NOT NULL,
    _deleted          boolean NOT NULL DEFAULT false
);
CREATE OR REPLACE VIEW {namespace}.orders_current AS SELECT * FROM {namespace}.orders WHERE NOT _deleted;

CREATE TABLE IF NOT EXISTS {namespace}.customers (
    customer_id  bigint PRIMARY KEY,
    name         text,
    segment      text,
    country      text,
    updated_at   timestamptz,
    event_id     text,
    event_time   timestamptz,
    _version     bigint  NOT NULL,
    _deleted     boolean NOT NULL DEFAULT false
);
CREATE OR REPLACE VIEW {namespace}.customers_current AS SELECT * FROM {namespace}.customers WHERE NOT _deleted;
