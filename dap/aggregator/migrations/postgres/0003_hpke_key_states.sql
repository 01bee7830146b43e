-- HPKE key rotation: each key is pending (decrypts, not advertised), active (advertised) or
-- expired (decrypts what is still in flight, not advertised). private_key is sealed with the
-- datastore key (AES-256-GCM), as are tasks.vdaf_verify_key and tasks.aggregator_auth_token.
ALTER TABLE hpke_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
