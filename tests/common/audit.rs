//! Audit-log helpers: raw SQL against a bastion's SQLite database (as an
//! attacker with database access would run it), verify and export.

use super::{Bastion, run, run_ok, text};

impl Bastion {
    pub fn db_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rw",
            self.data_dir().join("portcullis.db").display()
        )
    }

    /// Runs each statement in order; the first error is returned as text.
    pub fn db_exec(&self, sql: &[&str]) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&self.db_url()).await.unwrap();
            let mut r = Ok(());
            for q in sql {
                if let Err(e) = sqlx::query(q).execute(&pool).await {
                    r = Err(e.to_string());
                    break;
                }
            }
            pool.close().await;
            r
        })
    }

    /// Drops the append-only triggers first, as an attacker would.
    pub fn tamper(&self, sql: &[&str]) {
        let mut all = vec![
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ];
        all.extend_from_slice(sql);
        self.db_exec(&all).unwrap();
    }

    /// `audit verify`: (exit status success, stdout).
    pub fn audit_verify(&self) -> (bool, String) {
        let out = run(self.cli().args(["audit", "verify"]));
        (out.status.success(), text(&out.stdout))
    }

    /// `audit export ARGS --output FILE`, each line parsed as JSON.
    pub fn audit_export(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let file = self.dir.path().join("export.jsonl");
        run_ok(
            self.cli()
                .args(["audit", "export"])
                .args(args)
                .arg("--output")
                .arg(&file),
        );
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}
