-- Cluster mode: one writer per live offer in the whole cluster.
--
-- offers.writer_fence: the fencing token of the node that last took over the
-- offer's writer (its lease's revision in NATS JetStream; tokens only grow).
-- A new writer raises it before it reads the offer back, and every commit of
-- a writer checks it is still its own, in the same transaction: a paused old
-- writer that lost its lease can never commit after the new one started.
-- A single server never fences (0 stays 0).
ALTER TABLE offers ADD COLUMN writer_fence BIGINT NOT NULL DEFAULT 0;
