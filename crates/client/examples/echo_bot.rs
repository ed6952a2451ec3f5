//! A bot that answers every message it gets with the same text: the smallest useful bot.
//!
//! 1. Make the bot (as any user): `POST /api/v1/bots {"username": "echo"}` gives its token.
//! 2. Run it: `CHATNODE_URL=http://127.0.0.1:8080 CHATNODE_BOT_TOKEN=cnb_... cargo run -p chatnode-client --example echo_bot`
//! 3. Open a direct chat with it (no friendship needed) or add it to a group, and write.
//!
//! It reconnects by itself and resumes where it stopped; it exits when its token stops
//! working (rotated, or the bot deleted).

use chatnode_client::BotSession;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHATNODE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("CHATNODE_BOT_TOKEN")
        .map_err(|_| "set CHATNODE_BOT_TOKEN to the bot's token (POST /api/v1/bots gives it)")?;
    let mut bot = BotSession::connect(&url, &token).await?;
    println!("echo bot @{} is listening", bot.me().username);
    while let Some(message) = bot.next_message().await {
        let text = if message.body.is_empty() {
            "echo: (no text)".to_owned()
        } else {
            format!("echo: {}", message.body)
        };
        if let Err(e) = bot.reply(&message, &text).await {
            eprintln!(
                "cannot answer message {} in {}: {e}",
                message.seq, message.conversation_id
            );
        }
    }
    println!("the server no longer accepts this bot's token; stopping");
    Ok(())
}
