//! Operators (contract additions of 2026-12-07, "Operators"): `/admin/...`, reports, the
//! registration mode, upload usage.

use chatnode_protocol::{
    AdminUserList, AuditList, CreateRegistrationInviteRequest, CreatedId, RegistrationInfo,
    RegistrationInvite, RegistrationInviteList, ReportList, ReportRequest, ReportStatus,
    ResolveReportRequest, Stats, SuspendRequest, UploadUsage,
};
use reqwest::Method;

use super::{Auth, Client, push_opt, seg, to_value};
use crate::error::Result;

impl Client {
    /// `GET /auth/registration` (no auth): `open`, `invite` or `closed`.
    pub async fn registration_mode(&self) -> Result<RegistrationInfo> {
        let resp = self
            .send(Method::GET, "/auth/registration", &[], None, Auth::Never)
            .await?;
        super::decode("/auth/registration", &resp.body)
    }

    /// `GET /users/me/usage` (extension): the caller's uploads against the quotas.
    pub async fn upload_usage(&self) -> Result<UploadUsage> {
        Ok(self
            .json(Method::GET, "/users/me/usage", &[], None)
            .await?
            .1)
    }

    /// `POST /reports`: a user, or a message (conversation and seq); the report's ID.
    pub async fn report(&self, req: &ReportRequest) -> Result<String> {
        let (_, r): (u16, CreatedId) = self
            .json(Method::POST, "/reports", &[], Some(to_value(req)?))
            .await?;
        Ok(r.id)
    }

    /// `GET /admin/users?q=&cursor=&limit=`.
    pub async fn admin_users(
        &self,
        q: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<AdminUserList> {
        let mut query = Vec::new();
        push_opt(&mut query, "q", q);
        push_opt(&mut query, "cursor", cursor);
        push_opt(&mut query, "limit", limit);
        Ok(self
            .json(Method::GET, "/admin/users", &query, None)
            .await?
            .1)
    }

    /// `POST /admin/users/{id}/grant-admin` or `.../revoke-admin`.
    pub async fn set_system_admin(&self, user_id: &str, admin: bool) -> Result<()> {
        let verb = if admin { "grant-admin" } else { "revoke-admin" };
        let path = format!("/admin/users/{}/{verb}", seg(user_id));
        self.empty(Method::POST, &path, None).await
    }

    /// `POST /admin/users/{id}/suspend` `{reason, until}` (`until` None: until lifted).
    pub async fn suspend(&self, user_id: &str, reason: &str, until: Option<&str>) -> Result<()> {
        let path = format!("/admin/users/{}/suspend", seg(user_id));
        let body = to_value(&SuspendRequest {
            reason: reason.to_owned(),
            until: until.map(str::to_owned),
        })?;
        self.empty(Method::POST, &path, Some(body)).await
    }

    /// `POST /admin/users/{id}/unsuspend`.
    pub async fn unsuspend(&self, user_id: &str) -> Result<()> {
        let path = format!("/admin/users/{}/unsuspend", seg(user_id));
        self.empty(Method::POST, &path, None).await
    }

    /// `DELETE /admin/conversations/{id}/messages/{seq}`: deleted for everyone, as a
    /// moderator.
    pub async fn moderate_delete(&self, conversation_id: &str, seq: i64) -> Result<()> {
        let path = format!(
            "/admin/conversations/{}/messages/{seq}",
            seg(conversation_id)
        );
        self.empty(Method::DELETE, &path, None).await
    }

    /// `GET /admin/reports?status=`.
    pub async fn admin_reports(&self, status: ReportStatus) -> Result<ReportList> {
        let query = vec![("status", status.as_str().to_owned())];
        Ok(self
            .json(Method::GET, "/admin/reports", &query, None)
            .await?
            .1)
    }

    /// `POST /admin/reports/{id}/resolve` `{note}`.
    pub async fn resolve_report(&self, report_id: &str, note: Option<&str>) -> Result<()> {
        let path = format!("/admin/reports/{}/resolve", seg(report_id));
        let body = to_value(&ResolveReportRequest {
            note: note.map(str::to_owned),
        })?;
        self.empty(Method::POST, &path, Some(body)).await
    }

    /// `GET /admin/audit?cursor=&limit=`: newest first.
    pub async fn admin_audit(&self, cursor: Option<&str>, limit: Option<u32>) -> Result<AuditList> {
        let mut query = Vec::new();
        push_opt(&mut query, "cursor", cursor);
        push_opt(&mut query, "limit", limit);
        Ok(self
            .json(Method::GET, "/admin/audit", &query, None)
            .await?
            .1)
    }

    /// `GET /admin/stats`.
    pub async fn admin_stats(&self) -> Result<Stats> {
        Ok(self.json(Method::GET, "/admin/stats", &[], None).await?.1)
    }

    /// `POST /admin/registration-invites` `{uses, expires_at}`: the code, shown only here.
    pub async fn create_registration_invite(
        &self,
        uses: i64,
        expires_at: Option<&str>,
    ) -> Result<RegistrationInvite> {
        let body = to_value(&CreateRegistrationInviteRequest {
            uses,
            expires_at: expires_at.map(str::to_owned),
        })?;
        Ok(self
            .json(Method::POST, "/admin/registration-invites", &[], Some(body))
            .await?
            .1)
    }

    /// `GET /admin/registration-invites` (extension).
    pub async fn registration_invites(&self) -> Result<RegistrationInviteList> {
        Ok(self
            .json(Method::GET, "/admin/registration-invites", &[], None)
            .await?
            .1)
    }

    /// `DELETE /admin/registration-invites/{id}` (extension).
    pub async fn revoke_registration_invite(&self, id: &str) -> Result<()> {
        let path = format!("/admin/registration-invites/{}", seg(id));
        self.empty(Method::DELETE, &path, None).await
    }
}
