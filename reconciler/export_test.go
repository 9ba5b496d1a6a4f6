package reconciler

import "context"

// ResyncNow runs one resync (drift pass) of r, as Run's ticker does.
func ResyncNow(ctx context.Context, r *Reconciler) { r.resync(ctx) }
