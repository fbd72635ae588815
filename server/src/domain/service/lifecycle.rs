//! The message lifecycle (SPEC "Message lifecycle"): edit, delete for me or for everyone,
//! and reactions. Each change is logged for everyone it tells and delivered to all their
//! sockets, the one that asked included (that is its answer on a WebSocket).

use chat_protocol::rest::{
    DeleteScope, DeletedMessage, ReactionsResponse, MAX_REACTIONS_PER_MESSAGE,
};

use super::*;
use crate::domain::delivery::Delivery;
use crate::domain::links;
use crate::model::{Emoji, MessageBody};
use crate::store::{media_keys, Change, Changed};

impl ChatService {
    /// New content for one of `me`'s messages (text, or a media message's caption).
    pub async fn edit_message(
        &self,
        me: &AuthUser,
        id: MessageId,
        content: &str,
    ) -> Result<Message> {
        self.limits.check(Action::EditMessage, me.id).await?;
        let body = MessageBody::parse(content)?;
        let m = self.seen_message(me, id).await?;
        self.ensure_not_blocked(me.id, other_party(&m, me.id))
            .await?;
        let since = self.sender_window(me, &m, "edit")?;
        let links = links::extract(body.as_str());
        let change = Change::Edit {
            sender: me.id,
            content: body.as_str(),
            links: &links,
            since,
        };
        match self.store.change_message(id, &change, now()).await? {
            Changed::Applied { seqs, .. } => {
                crate::metrics::METRICS.message_changed("edited");
                let edited = self
                    .store
                    .message(id)
                    .await?
                    .ok_or(Error::NotFound("message"))?;
                let message = self.present(edited).await;
                self.publish_change(
                    seqs,
                    ServerEvent::MessageEdited {
                        message: message.clone(),
                    },
                )
                .await;
                Ok(message)
            }
            _ => Err(changed_meanwhile()),
        }
    }

    /// Delete for `me` only (any participant), or for everyone (the sender, within the
    /// edit window): a tombstone, its media objects removed from storage. Deleting what is
    /// already deleted (or hidden) answers the same, changing nothing.
    pub async fn delete_message(
        &self,
        me: &AuthUser,
        id: MessageId,
        scope: DeleteScope,
    ) -> Result<DeletedMessage> {
        self.limits.check(Action::EditMessage, me.id).await?;
        let m = self.seen_message(me, id).await?;
        let answer = DeletedMessage {
            conversation_id: m.conversation_id,
            message_id: id,
            scope,
        };
        let change = match scope {
            DeleteScope::Me => Change::Hide { user: me.id },
            DeleteScope::Everyone if m.deleted_at.is_some() && m.sender_id == me.id => {
                return Ok(answer)
            }
            DeleteScope::Everyone => Change::DeleteForEveryone {
                sender: me.id,
                since: self.sender_window(me, &m, "delete for everyone")?,
            },
        };
        match self.store.change_message(id, &change, now()).await? {
            Changed::Applied { before, seqs } => {
                crate::metrics::METRICS.message_changed(match scope {
                    DeleteScope::Me => "hidden",
                    DeleteScope::Everyone => "deleted",
                });
                if scope == DeleteScope::Everyone {
                    if let Some(media) = &self.media {
                        let keys: Vec<String> =
                            media_keys(&before.media).map(str::to_string).collect();
                        media.discard(&keys).await;
                    }
                }
                self.publish_change(
                    seqs,
                    ServerEvent::MessageDeleted {
                        conversation_id: m.conversation_id,
                        message_id: id,
                        scope,
                    },
                )
                .await;
                Ok(answer)
            }
            Changed::Unchanged => Ok(answer),
            _ => Err(changed_meanwhile()),
        }
    }

    /// Add (or remove) `me`'s reaction `emoji` to a message; the reactions it has now.
    pub async fn react(
        &self,
        me: &AuthUser,
        id: MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<ReactionsResponse> {
        self.limits.check(Action::React, me.id).await?;
        let emoji = Emoji::parse(emoji)?;
        let m = self.seen_message(me, id).await?;
        self.ensure_not_blocked(me.id, other_party(&m, me.id))
            .await?;
        if m.deleted_at.is_some() {
            return Err(Error::Conflict("the message was deleted".into()));
        }
        let change = Change::React {
            user: me.id,
            emoji: emoji.as_str(),
            add,
            max: MAX_REACTIONS_PER_MESSAGE,
        };
        match self.store.change_message(id, &change, now()).await? {
            Changed::Applied { seqs, .. } => {
                crate::metrics::METRICS.message_changed(if add {
                    "reaction_added"
                } else {
                    "reaction_removed"
                });
                self.publish_change(
                    seqs,
                    ServerEvent::ReactionUpdated {
                        conversation_id: m.conversation_id,
                        message_id: id,
                        emoji: emoji.as_str().to_string(),
                        user_id: me.id,
                        added: add,
                    },
                )
                .await;
            }
            Changed::Unchanged => {}
            Changed::TooManyReactions => {
                return Err(Error::Conflict(format!(
                    "a message can have at most {MAX_REACTIONS_PER_MESSAGE} different reactions"
                )))
            }
            Changed::Refused => return Err(changed_meanwhile()),
        }
        let reactions = self
            .store
            .message(id)
            .await?
            .map(|m| m.reactions.clone())
            .unwrap_or_default();
        Ok(ReactionsResponse {
            message_id: id,
            reactions,
        })
    }

    /// The oldest send time `me` may still change as the sender of `m`, or why not.
    fn sender_window(
        &self,
        me: &AuthUser,
        m: &StoredMessage,
        what: &str,
    ) -> Result<chrono::DateTime<chrono::Utc>> {
        if m.sender_id != me.id {
            return Err(Error::Forbidden(format!(
                "only the sender of a message can {what} it"
            )));
        }
        if m.deleted_at.is_some() {
            return Err(Error::Conflict("the message was deleted".into()));
        }
        let window = chrono::Duration::from_std(self.edit_window)
            .unwrap_or_else(|_| chrono::Duration::days(36_500));
        let since = now() - window;
        if m.created_at < since {
            return Err(Error::Forbidden(format!(
                "a message can be changed for {} after sending",
                human_duration(self.edit_window)
            )));
        }
        Ok(since)
    }

    /// Deliver a logged change to every socket of the users it was logged for.
    async fn publish_change(&self, seqs: Vec<(UserId, u64)>, event: ServerEvent) {
        let (users, positions): (Vec<UserId>, Vec<u64>) = seqs.into_iter().unzip();
        self.bus
            .publish(Delivery::to(users, event).with_seqs(positions))
            .await;
    }
}

fn other_party(m: &StoredMessage, me: UserId) -> UserId {
    if m.sender_id == me {
        m.receiver_id
    } else {
        m.sender_id
    }
}

fn changed_meanwhile() -> Error {
    Error::Conflict("the message changed meanwhile (deleted, or its time to change ran out)".into())
}

/// `86400 s` → `24 hours`, for refusals a person reads.
fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}
