//! Blocks: adding, removing, status and the list (`block` and `lookup` limits, counted
//! before the name is looked up).

use chat_protocol::rest::{BlockChange, BlockStatus, BlockedUser, Page};
use chat_protocol::ws::ServerEvent;

use super::{page, ChatService};
use crate::auth::AuthUser;
use crate::domain::delivery::Delivery;
use crate::error::{Error, Result};
use crate::model::{now, Cursor};
use crate::ratelimit::Action;

impl ChatService {
    /// Block `username`; `true` when the block is new.
    pub async fn block(&self, me: &AuthUser, username: &str) -> Result<(BlockChange, bool)> {
        self.limits.check(Action::Block, me.id).await?;
        let other = self.user_named(username).await?;
        if other.id == me.id {
            return Err(Error::SelfAction("you cannot block yourself".into()));
        }
        // Contacts see each other's presence; a block ends that (contacts leave out blocks),
        // so whether they were contacts is read before it is stored.
        let contacts = self.store.contacts(me.id).await?;
        let were_contacts = contacts.iter().any(|(id, _)| *id == other.id);
        let at = now();
        let created = self.store.block(me.id, other.id, at).await?;
        self.publish_block(me, &other.username, true).await;
        // Presence never crosses a block (SPEC "Privacy"), so neither side would hear the
        // other go offline later: a side that is online now is shown going offline now, to
        // the other, or its green dot stays forever. Only to someone who could see it.
        if created && were_contacts {
            let online = self.presence.online(&[me.id, other.id]).await;
            for (to, gone) in [(other.id, me.id), (me.id, other.id)] {
                if !online.contains(&gone) {
                    continue;
                }
                self.bus
                    .publish(Delivery::to(
                        vec![to],
                        ServerEvent::UserOffline {
                            user_id: gone,
                            last_seen_at: at,
                        },
                    ))
                    .await;
            }
        }
        Ok((
            BlockChange {
                username: other.username,
                blocked: true,
            },
            created,
        ))
    }

    pub async fn unblock(&self, me: &AuthUser, username: &str) -> Result<BlockChange> {
        self.limits.check(Action::Block, me.id).await?;
        let other = self.user_named(username).await?;
        self.store.unblock(me.id, other.id).await?;
        self.publish_block(me, &other.username, false).await;
        Ok(BlockChange {
            username: other.username,
            blocked: false,
        })
    }

    async fn publish_block(&self, me: &AuthUser, username: &str, blocked: bool) {
        self.bus
            .publish(Delivery::to(
                vec![me.id],
                ServerEvent::BlockUpdated {
                    username: username.to_string(),
                    blocked,
                },
            ))
            .await;
    }

    pub async fn block_status(&self, me: &AuthUser, username: &str) -> Result<BlockStatus> {
        self.limits.check(Action::Lookup, me.id).await?;
        let other = self.user_named(username).await?;
        let (blocked_by_me, blocked_me) = self.store.block_status(me.id, other.id).await?;
        Ok(BlockStatus {
            blocked_by_me,
            blocked_me,
        })
    }

    pub async fn list_blocks(
        &self,
        me: &AuthUser,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<BlockedUser>> {
        self.limits.check(Action::Lookup, me.id).await?;
        let rows = self.store.list_blocks(me.id, before, limit + 1).await?;
        let p = page(rows, limit, |(_, c)| *c);
        Ok(Page {
            data: p.data.into_iter().map(|(b, _)| b).collect(),
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        })
    }
}
