-- A reservation may reach the package repositories of its image through
-- a package proxy on its host (`allow: [packages]`, issue 17): asked for
-- with the reservation, kept here so a service that takes the VM back
-- after a restart opens the proxy again.
ALTER TABLE reservations ADD COLUMN allow_packages BIGINT NOT NULL DEFAULT 0;
