package fifteenth

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// KeySource supplies the partner API key for each call, so that a rotated key takes effect
// without a restart.
type KeySource interface {
	APIKey() (string, error)
}

// StaticKey is a fixed API key.
type StaticKey string

// APIKey returns the key, or an error when it is empty.
func (k StaticKey) APIKey() (string, error) {
	if k == "" {
		return "", errors.New("API key is empty")
	}
	return string(k), nil
}

// FileKey reads the API key from a file and reads it again whenever the file changes (a
// Kubernetes Secret volume swaps a symlink on update; os.Stat follows it).
type FileKey struct {
	path string

	mu      sync.Mutex
	key     string
	modTime time.Time
	size    int64
}

// NewFileKey returns a key source reading path.
func NewFileKey(path string) *FileKey { return &FileKey{path: path} }

// APIKey returns the file's content without surrounding white space.
func (f *FileKey) APIKey() (string, error) {
	st, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("API key file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.key != "" && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.key, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("API key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("API key file %s is empty", f.path)
	}
	f.key, f.modTime, f.size = key, st.ModTime(), st.Size()
	return key, nil
}
