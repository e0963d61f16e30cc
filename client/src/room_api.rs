//! The gateway's room API (`/v1/rooms`) as a trusted backend calls it,
//! with the service token: create rooms, add and remove members, change
//! their roles and flags.

/// Why a room API request failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomApiError {
    /// The gateway could not be reached or answered garbage.
    #[error("room API request: {0}")]
    Http(#[from] reqwest::Error),
    /// The gateway refused the request: 401 (bad token), 404 (no such
    /// room), 400 (`invalid_argument`)... with its JSON error body.
    #[error("room API request refused with HTTP {status}: {body}")]
    Refused { status: u16, body: String },
}

/// A handle on one gateway's room API as a backend; cheap to clone.
#[derive(Clone, Debug)]
pub struct RoomApi {
    http: reqwest::Client,
    /// `http://host:port`, without a trailing slash.
    base: String,
    token: String,
}

impl RoomApi {
    /// `base` is the gateway's HTTP address, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
        }
    }

    /// Creates a room (if it does not exist yet) and adds members to it.
    /// Returns whether the room is new.
    pub async fn create_room(&self, room: &str, members: &[&str]) -> Result<bool, RoomApiError> {
        self.create_room_owned(room, &[], members).await
    }

    /// Creates a room with `owners` as its owners and `members` as plain
    /// members. Returns whether the room is new.
    pub async fn create_room_owned(
        &self,
        room: &str,
        owners: &[&str],
        members: &[&str],
    ) -> Result<bool, RoomApiError> {
        let body = serde_json::json!({ "room": room, "owners": owners, "members": members });
        let response = self
            .http
            .post(format!("{}/v1/rooms", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        check(response).await?;
        Ok(status == 201)
    }

    /// Makes `user` a member of an existing room.
    pub async fn add_member(&self, room: &str, user: &str) -> Result<(), RoomApiError> {
        let response = self
            .http
            .put(self.member_url(room, user))
            .bearer_auth(&self.token)
            .send()
            .await?;
        check(response).await
    }

    /// Removes `user` from a room; the user's open sockets stop receiving it.
    pub async fn remove_member(&self, room: &str, user: &str) -> Result<(), RoomApiError> {
        let response = self
            .http
            .delete(self.member_url(room, user))
            .bearer_auth(&self.token)
            .send()
            .await?;
        check(response).await
    }

    /// Changes a member's role (`None` keeps it; a new one brings its
    /// default flags), then grants and revokes flags by name.
    pub async fn set_access(
        &self,
        room: &str,
        user: &str,
        role: Option<&str>,
        grant: &[&str],
        revoke: &[&str],
    ) -> Result<(), RoomApiError> {
        let body = serde_json::json!({
            "role": role.unwrap_or_default(),
            "grant": grant,
            "revoke": revoke,
        });
        let response = self
            .http
            .put(format!("{}/access", self.member_url(room, user)))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        check(response).await
    }

    // Room and user ids are restricted to URL-safe characters by the
    // protocol; one that is not is refused by the gateway, not mangled here.
    fn member_url(&self, room: &str, user: &str) -> String {
        format!("{}/v1/rooms/{room}/members/{user}", self.base)
    }
}

async fn check(response: reqwest::Response) -> Result<(), RoomApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(RoomApiError::Refused {
        status: status.as_u16(),
        body,
    })
}
