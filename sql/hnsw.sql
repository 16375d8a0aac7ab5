-- The pgrec_hnsw index access method and its operator classes. The name is not
-- pgvector's `hnsw`, so both extensions can live in one database. Each operator
-- class names the distance it indexes as support function 1; the index reads
-- it at build time and records it in its meta page.

CREATE FUNCTION pgrec_hnsw_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME', 'pgrec_hnsw_handler_wrapper' LANGUAGE C;

CREATE ACCESS METHOD pgrec_hnsw TYPE INDEX HANDLER pgrec_hnsw_handler;
COMMENT ON ACCESS METHOD pgrec_hnsw IS 'HNSW approximate nearest-neighbour index for embedding';

CREATE OPERATOR CLASS embedding_l2_ops DEFAULT FOR TYPE embedding USING pgrec_hnsw AS
    OPERATOR 1 <-> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(embedding, embedding);

CREATE OPERATOR CLASS embedding_cosine_ops FOR TYPE embedding USING pgrec_hnsw AS
    OPERATOR 1 <=> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(embedding, embedding);

CREATE OPERATOR CLASS embedding_ip_ops FOR TYPE embedding USING pgrec_hnsw AS
    OPERATOR 1 <#> (embedding, embedding) FOR ORDER BY float_ops,
    FUNCTION 1 negative_inner_product(embedding, embedding);
