-- Counterparties (Контрагенты) from the counterparty files a branch's 1C uploads
-- (`contragents___*.xml`). Rows are upserted by (branch, Ид) and never deleted: a
-- counterparty that 1C marks for deletion keeps its row with `deleted` set.
CREATE TABLE counterparties (
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    external_id           text NOT NULL,
    name                  text NOT NULL,
    full_name             text,
    inn                   text,          -- ИНН, taxpayer number
    kpp                   text,          -- КПП of an organisation
    deleted               boolean NOT NULL DEFAULT false,
    -- Every child element of the Контрагент as 1C sent it (addresses, contacts, bank
    -- accounts); it holds personal data of customers.
    raw                   jsonb NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (branch_code, external_id)
);
CREATE INDEX counterparties_inn_idx ON counterparties (inn) WHERE inn IS NOT NULL;
