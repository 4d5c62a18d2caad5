//! Projects `users.events` into `known_accounts`: the usernames that exist, so a chat can
//! be shared only with an account that exists (see `api::storage`'s grant checks).

use chatvault_common::projection::{Applied, Projection};
use chatvault_common::text::PgText;
use chatvault_proto::users::v1::{user_event, UserEvent};
use chrono::DateTime;
use prost::Message as _;
use rdkafka::message::{Message, OwnedMessage};
use tokio_postgres::Transaction;

/// Records an account; a redelivered registration changes nothing.
const UPSERT_KNOWN_ACCOUNT: &str = "
    INSERT INTO known_accounts (username, account_id, registered_at) VALUES ($1, $2, $3)
    ON CONFLICT (username) DO NOTHING";

/// The projection of `users.events` into `known_accounts`.
#[derive(Debug, Clone, Copy)]
pub struct AccountsProjection;

impl Projection for AccountsProjection {
    type Event = Option<user_event::Event>;

    fn name(&self) -> &str {
        "storage.accounts"
    }

    fn decode(&self, record: &OwnedMessage) -> Result<Self::Event, String> {
        let payload = record.payload().ok_or_else(|| "record has no value".to_owned())?;
        let decoded = UserEvent::decode(payload).map_err(|error| format!("not a chatvault.users.v1.UserEvent: {error}"))?;
        Ok(decoded.event)
    }

    async fn apply(&self, transaction: &Transaction<'_>, batch: &[Applied<Self::Event>]) -> chatvault_common::Result<()> {
        for applied in batch {
            if let Some(user_event::Event::AccountRegistered(account)) = &applied.event {
                let registered_at = DateTime::from_timestamp(account.registered_unix, 0);
                transaction.execute(UPSERT_KNOWN_ACCOUNT, &[&PgText::from(account.username.as_str()), &account.account_id, &registered_at]).await?;
            }
        }
        Ok(())
    }
}
