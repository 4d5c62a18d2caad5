-- The accounts storage knows of, projected from users.events (AccountRegistered), so a chat
-- is shared only with an account that exists: a share to a name nobody holds yet would
-- otherwise go to whoever registers that name later.
CREATE TABLE IF NOT EXISTS known_accounts (
    username      text PRIMARY KEY,
    account_id    text NOT NULL,
    registered_at timestamptz
);
