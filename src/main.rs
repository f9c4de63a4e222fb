use clap::Parser;
use fieldcast::config::{Cli, ClusterCommand, Command, Config};
use fieldcast::telemetry;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { settings, demo } => {
                let config = Config::load(cli.config.as_deref(), settings)?;
                telemetry::init_logging(config.log_format);
                if demo {
                    let store = fieldcast::open_store(&config).await?;
                    let account = fieldcast::seed_demo(&store).await?;
                    print_welcome(&config, &account);
                }
                tracing::info!(bind = %config.bind, public_url = %config.public_url,
                    database = %store::redact(&config.database_url), "fieldcast starting");
                fieldcast::serve_until_signal(config).await
            }
            Command::Migrate { settings } => {
                let config = Config::load(cli.config.as_deref(), settings)?;
                telemetry::init_logging(config.log_format);
                fieldcast::open_store(&config).await?;
                tracing::info!(database = %store::redact(&config.database_url), "migrations applied");
                Ok(())
            }
            Command::Cluster {
                command: ClusterCommand::Status { settings },
            } => {
                let config = Config::load(cli.config.as_deref(), settings)?;
                let Some(cluster) = &config.cluster else {
                    anyhow::bail!("not a cluster: give --cluster nats://HOST:4222 (or [cluster] url)");
                };
                print!("{}", fieldcast::cluster_status(cluster).await?);
                Ok(())
            }
        }
    })
}

fn print_welcome(config: &Config, account: &fieldcast::DemoAccount) {
    let url = &config.public_url;
    println!();
    println!("  fieldcast demo is ready / 演示数据已准备好");
    println!();
    println!("  Farmer's studio 农户工作台:  {url}/studio");
    println!(
        "    sign in 登录:  mobile 手机号 {}  password 密码 {}",
        account.mobile, account.password
    );
    println!(
        "  Viewer page 观众页面:       {url}/live/{}",
        account.broadcast_id
    );
    println!("  API document:              {url}/api/v1/openapi.json");
    println!();
}
