//! Sending: text and media messages, their checks, idempotent replays and delivery.

use chat_protocol::rest::{Message, MessageType, ReplyTo};
use chat_protocol::ws::ServerEvent;
use chat_protocol::{ConversationId, MessageId, UserId};

use super::{ChatService, Sent};
use crate::auth::AuthUser;
use crate::domain::delivery::{ConnKey, Delivery};
use crate::domain::links;
use crate::error::{Error, Result};
use crate::media::{Upload, MAX_IMAGES};
use crate::model::{now, MessageBody, TempId};
use crate::ratelimit::Action;
use crate::slots::Slot;
use crate::store::{InsertOutcome, NewMessage, StoredMessage};

impl ChatService {
    /// Send a text message. The one path for REST and WebSocket sends.
    pub async fn send_text(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        content: &str,
        temp_id: Option<&str>,
        reply_to: Option<MessageId>,
        origin: Option<ConnKey>,
    ) -> Result<Sent> {
        let body = MessageBody::parse(content)?;
        let temp_id = TempId::parse_opt(temp_id)?;
        // In a conversation this instance knows, the send goes straight to its batched
        // insert, which checks blocks, erasure and the temp_id itself (then the same errors
        // and replays follow from `unstored`); otherwise one read first.
        let known = self.participants.other(conv, me.id);
        let (receiver, existing) = match known {
            Some(receiver) => (receiver, None),
            None => self.send_target(me, conv, temp_id.as_ref()).await?,
        };
        // A retry of something already stored costs no rate and stores nothing.
        if let Some(existing) = existing {
            return self.replay(conv, existing, origin).await;
        }
        if let Err(refused) = self.limits.check(Action::SendMessage, me.id).await {
            // Over the rate, a retry of a stored message is still answered with it.
            if known.is_some() && temp_id.is_some() {
                if let (_, Some(existing)) = self.send_target(me, conv, temp_id.as_ref()).await? {
                    return self.replay(conv, existing, origin).await;
                }
            }
            return Err(refused);
        }
        let reply_to = self.reply_target(me, conv, reply_to).await?;
        let links = links::extract(body.as_str());
        let message = Message {
            id: MessageId::new(),
            conversation_id: conv,
            sender_id: me.id,
            receiver_id: receiver,
            kind: MessageType::Text,
            content: Some(body.into_string()),
            media: Vec::new(),
            temp_id: temp_id.map(|t| t.as_str().to_string()),
            is_read: false,
            read_at: None,
            created_at: now(),
            reply_to,
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
        };
        self.store_and_deliver(me, message, links, origin).await
    }

    /// Before a single byte of an upload is read: `me` may send in `conv`, and the send
    /// is charged to the send rate now (the upload is the cost, so a refused user never
    /// streams to the spool; a retried upload with a known temp_id is charged too).
    /// The upload's declared size (`Content-Length`; the largest body when absent) is
    /// charged to the `upload_mb` budget, and the returned slot (one of the user's
    /// `CHAT_UPLOADS_PER_USER`) is held until the send is done.
    pub async fn charge_upload(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        declared_bytes: Option<u64>,
    ) -> Result<Slot<UserId>> {
        let media = self
            .media
            .as_ref()
            .ok_or_else(|| Error::UnsupportedMediaType("media is not enabled".into()))?;
        self.receiver_for_send(me, conv).await?;
        let slot = media.upload_slot(me.id).ok_or_else(|| {
            crate::metrics::METRICS.refused("uploads_per_user");
            Error::Capped("an upload of yours is still in progress; send one at a time".into())
        })?;
        self.limits.check(Action::SendMessage, me.id).await?;
        let bytes = declared_bytes.unwrap_or(crate::media::MAX_BODY as u64);
        let mb = u32::try_from(bytes.div_ceil(1024 * 1024)).unwrap_or(u32::MAX);
        self.limits.check_n(Action::UploadMb, me.id, mb).await?;
        Ok(slot)
    }

    /// The receiver of a send from `me` in `conv`: `me` takes part and neither side
    /// blocked the other. Checked before an upload is read, and again when it is stored.
    pub async fn receiver_for_send(&self, me: &AuthUser, conv: ConversationId) -> Result<UserId> {
        Ok(self.send_target(me, conv, None).await?.0)
    }

    /// The receiver, and the message `me` already stored with `temp_id` if any: one read
    /// on the hot path (participation, blocks both ways and the idempotency key).
    async fn send_target(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        temp_id: Option<&TempId>,
    ) -> Result<(UserId, Option<StoredMessage>)> {
        let ctx = self
            .store
            .send_context(me.id, conv, temp_id.map(TempId::as_str))
            .await?
            .ok_or(Error::NotFound("conversation"))?;
        if ctx.sender_blocks {
            return Err(Error::Blocked("you have blocked this user".into()));
        }
        if ctx.receiver_blocks {
            return Err(Error::Blocked("this user has blocked you".into()));
        }
        self.participants.remember(conv, me.id, ctx.receiver);
        let existing = match ctx.existing {
            // Gone in between (a purge): send it anew.
            Some(id) => self.store.message(id).await?,
            None => None,
        };
        Ok((ctx.receiver, existing))
    }

    /// Send a media message (images, a video or a file, already received and typed),
    /// with an optional caption. Same checks, idempotency and events as text; the send
    /// rate was charged by [`ChatService::charge_upload`] before the upload was read.
    pub async fn send_media(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        caption: Option<&str>,
        temp_id: Option<&str>,
        reply_to: Option<MessageId>,
        uploads: Vec<Upload>,
    ) -> Result<Sent> {
        let media = self
            .media
            .clone()
            .ok_or_else(|| Error::UnsupportedMediaType("media is not enabled".into()))?;
        let caption = match caption.map(str::trim) {
            Some(c) if !c.is_empty() => Some(MessageBody::parse(c)?),
            _ => None,
        };
        let temp_id = TempId::parse_opt(temp_id)?;
        let kind = media_kind(&uploads)?;
        let (receiver, existing) = self.send_target(me, conv, temp_id.as_ref()).await?;
        if let Some(existing) = existing {
            return self.replay(conv, existing, None).await;
        }
        let reply_to = self.reply_target(me, conv, reply_to).await?;
        let stored = media.store_all(uploads).await?;
        let links = caption
            .as_ref()
            .map(|c| links::extract(c.as_str()))
            .unwrap_or_default();
        let message = Message {
            id: MessageId::new(),
            conversation_id: conv,
            sender_id: me.id,
            receiver_id: receiver,
            kind,
            content: caption.map(MessageBody::into_string),
            media: stored.items,
            temp_id: temp_id.map(|t| t.as_str().to_string()),
            is_read: false,
            read_at: None,
            created_at: now(),
            reply_to,
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
        };
        let result = self.store_and_deliver(me, message, links, None).await;
        // Nothing new was stored (an error, or a concurrent send with the same temp_id
        // won): the objects belong to no message.
        if !matches!(result, Ok(Sent { created: true, .. })) {
            media.discard(&stored.keys).await;
        }
        result
    }

    /// The quoted original of a reply: a message of `conv` that `me` sees and that is not
    /// deleted.
    async fn reply_target(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        reply_to: Option<MessageId>,
    ) -> Result<Option<ReplyTo>> {
        let Some(id) = reply_to else {
            return Ok(None);
        };
        match self.store.message_for(id, me.id).await? {
            Some(m) if m.conversation_id == conv && m.deleted_at.is_none() => Ok(Some(ReplyTo {
                id,
                sender_id: Some(m.sender_id),
                kind: Some(m.kind),
                preview: m.content.as_deref().map(ReplyTo::preview_of),
                deleted: false,
            })),
            _ => Err(Error::Validation(
                "reply_to_id must be a message of this conversation that is not deleted".into(),
            )),
        }
    }

    async fn store_and_deliver(
        &self,
        me: &AuthUser,
        message: Message,
        links: Vec<String>,
        origin: Option<ConnKey>,
    ) -> Result<Sent> {
        let conv = message.conversation_id;
        let receiver = message.receiver_id;
        match self.sends.insert(NewMessage { message, links }).await? {
            InsertOutcome::Created(message, seqs) => {
                crate::metrics::METRICS.message_sent(message.kind.as_str());
                let message = self.present(message).await;
                self.bus
                    .publish(
                        Delivery::to(
                            vec![me.id, receiver],
                            ServerEvent::MessageNew {
                                message: message.clone(),
                            },
                        )
                        .with_seqs(vec![seqs.sender, seqs.receiver])
                        .except(origin),
                    )
                    .await;
                self.push_if_offline(me, &message);
                Ok(Sent {
                    message,
                    created: true,
                    seq: Some(seqs.sender),
                })
            }
            InsertOutcome::Existing(existing) => self.replay(conv, existing, origin).await,
        }
    }

    /// A retried send of a stored message: the same message back, and `message.new`
    /// (same id and `seq`) announced again. The first attempt may have been stored by an instance
    /// that died before it could announce it, so a retry is the one chance the receiver
    /// has to hear of it live; clients that did hear it drop the repeat by id.
    async fn replay(
        &self,
        conv: ConversationId,
        existing: StoredMessage,
        origin: Option<ConnKey>,
    ) -> Result<Sent> {
        if existing.conversation_id != conv {
            return Err(Error::Conflict(
                "temp_id was already used for a message in another conversation".into(),
            ));
        }
        // Announced at the positions it got when it was stored, so a client that has it
        // drops the repeat by `seq`, and one that missed it fills its hole.
        let seqs = self.store.message_seqs(existing.id).await?;
        let message = self.present(existing).await;
        let users = vec![message.sender_id, message.receiver_id];
        let seq_of = |u: UserId| seqs.iter().find(|(id, _)| *id == u).map(|(_, s)| *s);
        let positions: Option<Vec<u64>> = users.iter().map(|u| seq_of(*u)).collect();
        self.bus
            .publish(
                Delivery::to(
                    users,
                    ServerEvent::MessageNew {
                        message: message.clone(),
                    },
                )
                .with_seqs(positions.unwrap_or_default())
                .except(origin),
            )
            .await;
        Ok(Sent {
            seq: seq_of(message.sender_id),
            message,
            created: false,
        })
    }
}

/// The message type of a set of uploads: 1..=10 images, or exactly one video or file.
fn media_kind(uploads: &[Upload]) -> Result<MessageType> {
    let Some(first) = uploads.first() else {
        return Err(Error::Validation(
            "attach at least one file (form field \"file\")".into(),
        ));
    };
    let kind = first.detected.kind;
    if kind == MessageType::Image {
        if uploads
            .iter()
            .any(|u| u.detected.kind != MessageType::Image)
        {
            return Err(Error::Validation(
                "images cannot be mixed with videos or files in one message".into(),
            ));
        }
        if uploads.len() > MAX_IMAGES {
            return Err(Error::Validation(format!(
                "at most {MAX_IMAGES} images per message"
            )));
        }
    } else if uploads.len() > 1 {
        return Err(Error::Validation(
            "a video or a file must be sent alone, one per message".into(),
        ));
    }
    Ok(kind)
}
