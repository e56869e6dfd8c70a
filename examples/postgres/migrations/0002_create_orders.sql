-- hoist:phase expand
-- hoist:up
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id),
  total numeric(12, 2) NOT NULL
);
CREATE INDEX orders_customer_idx ON orders (customer_id);

-- hoist:down
DROP TABLE orders;
