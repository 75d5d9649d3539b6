-- Orders enriched with the customer's segment and country from the customers dimension
-- (the reporting table in PostgreSQL that the customers CDC job keeps current).
-- {events} and {customers} are DataFrames Spark binds for each micro-batch (parameterised spark.sql).
SELECT e.*,
       c.segment AS customer_segment,
       c.country AS customer_country
FROM {events} e
LEFT JOIN {customers} c
       ON c.customer_id = e.customer_id
