CREATE TABLE authors (
  id   bigserial PRIMARY KEY,
  name text      NOT NULL,
  bio  text,
  port int       NOT NULL DEFAULT inet_server_port()
);
