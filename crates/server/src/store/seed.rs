// Bulk creation of benchmark fixtures (`chatnode bench-seed`), compiled once per SQL backend
// like `sql.rs`. Not reachable over HTTP: it runs from the command line against a data
// directory, so a load test can have 20,000 users with friends and groups in seconds instead
// of paying an argon2 hash and a dozen requests per user.

impl SqlStore {
    /// Inserts `user_ids.len()` users (usernames `{prefix}{index}`), one login session each
    /// (ids returned, in order) and the conversations, in one transaction.
    async fn seed_fixtures(
        &self,
        prefix: &str,
        user_ids: &[String],
        password_hash: &str,
        conversations: &[SeedConversation],
    ) -> Result<Vec<String>> {
        let _gate = self.gate.lock().await;
        let mut conn = self.write.acquire().await?;
        let mut tx = conn.begin().await?;
        Self::lock_writes(&mut tx).await?;
        let now = now_ms();
        let mut sessions = Vec::with_capacity(user_ids.len());
        for (i, id) in user_ids.iter().enumerate() {
            let name = format!("{prefix}{i}");
            sqlx::query(
                "INSERT INTO users (id, username, username_key, display_name, display_key, password_hash, created_at)
                 VALUES ($1, $2, $2, $2, $2, $3, $4)",
            )
            .bind(id)
            .bind(&name)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let sid = new_id();
            sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(&sid)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sessions.push(sid);
        }
        for (n, conv) in conversations.iter().enumerate() {
            let ids: Vec<&String> = conv.members.iter().map(|&i| &user_ids[i]).collect();
            if ids.len() == 2 {
                let (a, b) = if ids[0] < ids[1] { (ids[0], ids[1]) } else { (ids[1], ids[0]) };
                sqlx::query(
                    "INSERT INTO conversations (id, kind, direct_key, created_at, last_activity_at) VALUES ($1, 'direct', $2, $3, $3)",
                )
                .bind(&conv.id)
                .bind(format!("{a}:{b}"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for (x, y) in [(a, b), (b, a)] {
                    sqlx::query("INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(x)
                        .bind(y)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            } else {
                let name = format!("{prefix}group{n}");
                sqlx::query(
                    "INSERT INTO conversations (id, kind, name, name_key, created_at, last_activity_at) VALUES ($1, 'group', $2, $2, $3, $3)",
                )
                .bind(&conv.id)
                .bind(&name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for (k, user) in ids.iter().enumerate() {
                let role = if ids.len() > 2 && k == 0 { "owner" } else { "member" };
                sqlx::query(
                    "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_pos, last_read_seq)
                     VALUES ($1, $2, $3, $4, 0, 0)",
                )
                .bind(&conv.id)
                .bind(*user)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(sessions)
    }
}
