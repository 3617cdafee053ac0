package sources

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/config"
)

// AddFlags adds the flags that say what an input holds: --extensions,
// --image-column, --id-column, --image-root (config-file keys: o's yaml
// tags).
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.Var(config.List(&o.Extensions), "extensions", "extensions directories and globs take, comma-separated or repeated, with or without the leading dot, in any letter case: jpg,png is .jpg,.PNG (default: "+strings.Join(ImageExtensions, ",")+")")
	fs.StringVar(&o.ImageColumn, "image-column", o.ImageColumn, "Parquet column with the images (default: the first of "+strings.Join(ImageColumns, ", ")+")")
	fs.StringVar(&o.IDColumn, "id-column", o.IDColumn, "Parquet column with the ids, - for none (default: the first of "+strings.Join(IDColumns, ", ")+")")
	fs.StringVar(&o.ImageRoot, "image-root", o.ImageRoot, "directory a Parquet image path may point into (default: the Parquet file's own)")
}
