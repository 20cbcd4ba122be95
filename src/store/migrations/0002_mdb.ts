import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// The machine database. The TS layer validates first (for clear messages); these constraints
// are the backstop that concurrent writers cannot race past.
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE ip_pool (
    mtype text PRIMARY KEY CHECK (mtype IN ('user', 'service', 'cluster')),
    network cidr NOT NULL UNIQUE CHECK (family(network) = 4 AND masklen(network) BETWEEN 8 AND 30),
    reserved inet[] NOT NULL DEFAULT '{}'
  )`
  // orga machines allocate from the user pool (as the original); 192.168.1.254 is gw.
  yield* sql`INSERT INTO ip_pool (mtype, network, reserved) VALUES
    ('user', '192.168.0.0/24', '{}'),
    ('service', '192.168.1.0/24', '{192.168.1.254}'),
    ('cluster', '192.168.2.0/24', '{}')`

  yield* sql`CREATE TABLE machine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname text NOT NULL,
    aliases text[] NOT NULL DEFAULT '{}',
    ip inet NOT NULL CHECK (family(ip) = 4 AND masklen(ip) = 32),
    mac text NOT NULL CHECK (mac ~ '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$'),
    rfs integer NOT NULL DEFAULT 0 CHECK (rfs >= 0),
    hfs integer NOT NULL DEFAULT 0 CHECK (hfs >= 0),
    mtype text NOT NULL CHECK (mtype IN ('user', 'orga', 'cluster', 'service')),
    room text NOT NULL CHECK (room IN ('pasteur', 'alt', 'cluster', 'other')),
    is_faulty boolean NOT NULL DEFAULT false,
    is_faulty_details text NOT NULL DEFAULT '',
    CONSTRAINT machine_hostname_key UNIQUE (hostname),
    CONSTRAINT machine_ip_key UNIQUE (ip),
    CONSTRAINT machine_mac_key UNIQUE (mac)
  )`
  // Every hostname and alias of every machine, so that no name is used twice across
  // machines (an alias may not shadow another machine's hostname) whatever the writer.
  yield* sql`CREATE TABLE machine_name (
    name text PRIMARY KEY CHECK (length(name) <= 64 AND name ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]+)?$'),
    machine_id bigint NOT NULL REFERENCES machine (id) ON DELETE CASCADE,
    is_hostname boolean NOT NULL
  )`
  yield* sql`CREATE INDEX machine_name_machine ON machine_name (machine_id)`
  yield* sql`CREATE FUNCTION machine_name_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM machine_name WHERE machine_id = NEW.id;
      INSERT INTO machine_name (name, machine_id, is_hostname)
        SELECT n.name, NEW.id, n.ord = 1
        FROM unnest(array_prepend(NEW.hostname, NEW.aliases)) WITH ORDINALITY AS n(name, ord);
      RETURN NULL;
    END $$`
  yield* sql`CREATE TRIGGER machine_name_sync AFTER INSERT OR UPDATE OF hostname, aliases ON machine
    FOR EACH ROW EXECUTE FUNCTION machine_name_sync()`

  yield* sql`CREATE TABLE switch (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    chassis text NOT NULL CHECK (chassis ~ '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$'),
    room text NOT NULL DEFAULT 'other' CHECK (room IN ('pasteur', 'alt', 'cluster', 'other')),
    rfs integer NOT NULL DEFAULT 0 CHECK (rfs >= 0),
    hfs integer NOT NULL DEFAULT 0 CHECK (hfs >= 0),
    CONSTRAINT switch_name_key UNIQUE (name),
    CONSTRAINT switch_chassis_key UNIQUE (chassis)
  )`

  yield* sql`CREATE TABLE setting (
    key text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 64),
    value_bool boolean,
    value_str text CHECK (length(value_str) <= 64),
    value_int bigint
  )`
  yield* sql`INSERT INTO setting (key, value_bool) VALUES ('allow_self_registration', true)`
})
