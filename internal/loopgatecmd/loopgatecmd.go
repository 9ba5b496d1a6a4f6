// Package loopgatecmd is the `loopgate` command: `loopgate serve` runs the
// API server, the reconciler and (by default) the embedded Kafka clusters.
package loopgatecmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
)

// Execute runs the command line and returns the process exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "loopgate",
		Short:         "loopgate: governed, self-service analytics loops on Kafka",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(stdout, stderr))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "loopgate:", err)
		return 1
	}
	return 0
}

func serveCmd(stdout, stderr io.Writer) *cobra.Command {
	var cfgPath, dataDir, grpcAddr, httpAddr, logLevel, logFormat string
	var reflect bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the loopgate API (gRPC + REST) and reconciler",
		Long: `Run the loopgate API (gRPC and REST) and the reconciler.

With no --config it runs the embedded default: a SQLite store and two
in-process Kafka clusters (regions eu and us) under --data-dir, the demo team
catalog, and dev tokens written to ~/.loopgate/dev-credentials.json so that
loopctl on this machine works without flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg *config.Config
			if cfgPath != "" {
				var err error
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			} else {
				cfg = config.Embedded(dataDir)
			}
			if cmd.Flags().Changed("data-dir") {
				cfg.DataDir = dataDir
			}
			if cmd.Flags().Changed("grpc-addr") {
				cfg.GRPCAddr = grpcAddr
			}
			if cmd.Flags().Changed("http-addr") {
				cfg.HTTPAddr = httpAddr
			}
			if cmd.Flags().Changed("log-format") {
				cfg.Log.Format = logFormat
			}
			if cmd.Flags().Changed("reflection") {
				cfg.Reflection = reflect
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
			if cfg.Log.Format == config.LogJSON {
				handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
			}
			log := slog.New(handler)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := app.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			srv.Banner(stdout)
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (default: the embedded default)")
	f.StringVar(&dataDir, "data-dir", "loopgate-data", "where state, embedded clusters and dev tokens live")
	f.StringVar(&grpcAddr, "grpc-addr", "127.0.0.1:7070", "gRPC listen address")
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "REST (grpc-gateway) listen address")
	f.StringVar(&logLevel, "log-level", "info", "debug | info | warn | error")
	f.StringVar(&logFormat, "log-format", "text", "text | json (overrides log.format of the config)")
	f.BoolVar(&reflect, "reflection", false, "serve gRPC server reflection (overrides reflection of the config; off by default)")
	return cmd
}
