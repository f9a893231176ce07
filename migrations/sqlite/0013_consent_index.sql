-- The index by message type serves one query, the consent list (agree and disagree events), yet every
-- stored message paid an insert into it: on SQLite it now holds only those events (a partial index,
-- which the consent query names by the same literal types). A tenant's text messages no longer grow it.

DROP INDEX huixi_messages_by_type;
CREATE INDEX huixi_messages_by_type ON huixi_messages (tenant, msgtype, msgtime) WHERE msgtype IN ('agree', 'disagree');
