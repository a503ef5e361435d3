DROP SEQUENCE account_user_ids;
DROP TABLE accounts;
