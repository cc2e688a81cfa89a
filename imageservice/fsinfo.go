package imageservice

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fsInfoTTL is how long an ImageFsInfo answer is reused: summing the usage of every snapshot is
// not free, and the kubelet asks every few seconds.
const fsInfoTTL = 5 * time.Second

type fsInfo struct {
	at   time.Time
	resp *runtime.ImageFsInfoResponse
}

// ImageFsInfo returns the bytes and inodes used by the namespace's snapshots (the snapshotter's
// directory) and content (the content store's directory), with their mountpoints, snapshotter
// first.
func (s *Service) ImageFsInfo(ctx context.Context, req *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if s.fsCache != nil && time.Since(s.fsCache.at) < fsInfoTTL {
		return proto.Clone(s.fsCache.resp).(*runtime.ImageFsInfoResponse), nil
	}
	ctx = s.nsCtx(ctx)
	snRoot, contentRoot := s.roots(ctx)
	now := time.Now()

	sn := s.client.SnapshotService(s.cfg.Snapshotter)
	var keys []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		keys = append(keys, info.Name)
		return nil
	}); err != nil {
		return nil, internalStatus(fmt.Sprintf("image fs info: walk snapshotter %s", s.cfg.Snapshotter), err)
	}
	var snBytes, snInodes int64
	for _, k := range keys {
		u, err := sn.Usage(ctx, k)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			return nil, internalStatus(fmt.Sprintf("image fs info: usage of snapshot %s", k), err)
		}
		snBytes += u.Size
		snInodes += u.Inodes
	}

	var cBytes, cInodes int64
	if err := s.client.ContentStore().Walk(ctx, func(info content.Info) error {
		cBytes += info.Size
		cInodes++
		return nil
	}); err != nil {
		return nil, internalStatus("image fs info: walk content store", err)
	}

	resp := &runtime.ImageFsInfoResponse{ImageFilesystems: []*runtime.FilesystemUsage{
		{
			Timestamp:  now.UnixNano(),
			FsId:       &runtime.FilesystemIdentifier{Mountpoint: snRoot},
			UsedBytes:  &runtime.UInt64Value{Value: uint64(max(snBytes, 0))},
			InodesUsed: &runtime.UInt64Value{Value: uint64(max(snInodes, 0))},
		},
		{
			Timestamp:  now.UnixNano(),
			FsId:       &runtime.FilesystemIdentifier{Mountpoint: contentRoot},
			UsedBytes:  &runtime.UInt64Value{Value: uint64(max(cBytes, 0))},
			InodesUsed: &runtime.UInt64Value{Value: uint64(max(cInodes, 0))},
		},
	}}
	s.fsCache = &fsInfo{at: now, resp: resp}
	return proto.Clone(resp).(*runtime.ImageFsInfoResponse), nil
}

// roots returns the directories of the snapshotter and the content store: what containerd's
// plugins export as their root, else derived from Config.ContainerdRoot.
func (s *Service) roots(ctx context.Context) (snapshotter, contentRoot string) {
	if s.fsRoots != nil {
		return s.fsRoots["snapshotter"], s.fsRoots["content"]
	}
	roots := map[string]string{}
	in := s.client.IntrospectionService()
	complete := true
	for key, filter := range map[string]string{
		"snapshotter": fmt.Sprintf("type==%s,id==%s", plugins.SnapshotPlugin, s.cfg.Snapshotter),
		"content":     fmt.Sprintf("type==%s,id==content", plugins.ContentPlugin),
	} {
		resp, err := in.Plugins(ctx, filter)
		if err == nil && len(resp.Plugins) > 0 && resp.Plugins[0].Exports[plugins.SnapshotterRootDir] != "" {
			roots[key] = resp.Plugins[0].Exports[plugins.SnapshotterRootDir]
			continue
		}
		complete = false
		if s.cfg.ContainerdRoot != "" {
			if key == "snapshotter" {
				roots[key] = filepath.Join(s.cfg.ContainerdRoot, string(plugins.SnapshotPlugin)+"."+s.cfg.Snapshotter)
			} else {
				roots[key] = filepath.Join(s.cfg.ContainerdRoot, string(plugins.ContentPlugin)+".content")
			}
		}
	}
	if complete {
		s.fsRoots = roots
	}
	return roots["snapshotter"], roots["content"]
}
