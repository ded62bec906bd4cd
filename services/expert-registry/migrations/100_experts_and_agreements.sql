-- The expert registry's tables: experts and framework agreements (rammeavtaler).

CREATE TABLE experts (
    expert_id                    UUID        PRIMARY KEY,
    name                         TEXT        NOT NULL,
    supplier_organisation_number CHAR(9)     NOT NULL,
    profession                   TEXT        NOT NULL,
    authorisation_kind           TEXT        NOT NULL,
    authorisation_reference      TEXT        NOT NULL,
    competence_areas             TEXT[]      NOT NULL CHECK (cardinality(competence_areas) > 0),
    version                      BIGINT      NOT NULL,
    registered_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One registration per qualification: the same HPR number twice is a duplicate.
    CONSTRAINT experts_authorisation_unique UNIQUE (authorisation_kind, authorisation_reference)
);

CREATE INDEX experts_by_supplier ON experts (supplier_organisation_number);

CREATE TABLE agreements (
    agreement_id                 UUID        PRIMARY KEY,
    agreement_reference          TEXT        NOT NULL CONSTRAINT agreements_reference_unique UNIQUE,
    supplier_organisation_number CHAR(9)     NOT NULL,
    supplier_name                TEXT        NOT NULL,
    county_code                  CHAR(2)     NOT NULL,
    competence_areas             TEXT[]      NOT NULL CHECK (cardinality(competence_areas) > 0),
    price_per_assignment_ore     BIGINT      NOT NULL CHECK (price_per_assignment_ore > 0),
    ranking                      INTEGER     NOT NULL CHECK (ranking >= 1),
    monthly_capacity             INTEGER     NOT NULL CHECK (monthly_capacity > 0),
    valid_from                   DATE        NOT NULL,
    valid_to                     DATE        NOT NULL,
    ended_on                     DATE,
    end_reason                   TEXT,
    version                      BIGINT      NOT NULL,
    registered_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (valid_from <= valid_to)
);

CREATE INDEX agreements_by_county ON agreements (county_code, ranking);
