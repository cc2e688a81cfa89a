package imageservice

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists the local images; a filter with an image reference or ID lists that image only.
func (s *Service) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	imgs, err := s.filtered(req.GetFilter())
	if err != nil {
		return nil, err
	}
	out := make([]*runtime.Image, len(imgs))
	for i, img := range imgs {
		out[i] = ToCRIImage(img)
	}
	return &runtime.ListImagesResponse{Images: out}, nil
}

// streamChunk is the number of images per StreamImages message.
const streamChunk = 256

// StreamImages is ListImages in messages of at most streamChunk images.
func (s *Service) StreamImages(req *runtime.StreamImagesRequest, stream grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	imgs, err := s.filtered(req.GetFilter())
	if err != nil {
		return err
	}
	for start := 0; start < len(imgs); start += streamChunk {
		end := min(start+streamChunk, len(imgs))
		resp := &runtime.StreamImagesResponse{Images: make([]*runtime.Image, 0, end-start)}
		for _, img := range imgs[start:end] {
			resp.Images = append(resp.Images, ToCRIImage(img))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) filtered(filter *runtime.ImageFilter) ([]Image, error) {
	if ref := filter.GetImage().GetImage(); ref != "" {
		img, ok := s.index.lookup(ref)
		if !ok {
			return nil, nil
		}
		return []Image{img}, nil
	}
	return s.index.list(), nil
}

// ImageStatus returns the status of an image given by ID, tag or digest reference; a response
// without image when there is no such image.
func (s *Service) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "image reference is empty")
	}
	img, ok := s.index.lookup(ref)
	if !ok {
		if _, isID := idPrefix(ref); !isID {
			if _, err := reference.ParseDockerRef(ref); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "invalid image reference %q: %v", ref, err)
			}
		}
		return &runtime.ImageStatusResponse{}, nil
	}
	resp := &runtime.ImageStatusResponse{Image: ToCRIImage(img)}
	if req.GetVerbose() {
		info, err := json.Marshal(verboseInfo{
			ID:          img.ID,
			ChainID:     img.ChainID,
			Target:      img.Target,
			Names:       img.Names,
			ImageSpec:   img.Config,
			ConfigDesc:  img.ConfigDescriptor,
			Pinned:      img.Pinned,
			Snapshotter: s.cfg.Snapshotter,
		})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "image %s: verbose info: %v", img.ID, err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// verboseInfo is ImageStatus's info["info"]: the shape containerd's CRI uses (chainID,
// imageSpec) and a little more.
type verboseInfo struct {
	ID          string             `json:"id"`
	ChainID     string             `json:"chainID"`
	Target      ocispec.Descriptor `json:"target"`
	Names       []string           `json:"names"`
	ImageSpec   ocispec.Image      `json:"imageSpec"`
	ConfigDesc  ocispec.Descriptor `json:"configDescriptor"`
	Pinned      bool               `json:"pinned"`
	Snapshotter string             `json:"snapshotter"`
}

// ToCRIImage converts an Image to its CRI form.
func ToCRIImage(img Image) *runtime.Image {
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(max(img.Size, 0)),
		Pinned:      img.Pinned,
	}
	uid, username := ImageUser(img.Config.Config.User)
	if uid != nil {
		out.Uid = &runtime.Int64Value{Value: *uid}
	}
	out.Username = username
	return out
}

// ImageUser splits an image config's User ("1000", "www-data", "1000:50", "www-data:group")
// into a numeric uid or a user name; the group is not part of it.
func ImageUser(user string) (uid *int64, username string) {
	if user == "" {
		return nil, ""
	}
	u, _, _ := strings.Cut(user, ":")
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &n, ""
	}
	return nil, u
}

// RemoveImage removes an image given by ID, tag or digest reference, with all its names.
// Removing an image that is not there succeeds.
func (s *Service) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "image reference is empty")
	}
	if err := s.Remove(ctx, ref); err != nil {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}

// deleteRecord deletes the image record name (absent is fine) and drops it from the index, with
// no read back: re-reads wait (refreshMu), so a pull that makes the record again meanwhile
// indexes it after this. sync: containerd collects what the record held before returning.
func (s *Service) deleteRecord(ctx context.Context, name string, sync bool) error {
	var opts []images.DeleteOpt
	if sync {
		opts = append(opts, images.SynchronousDelete())
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if err := s.client.ImageService().Delete(ctx, name, opts...); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	s.forgetLocked(name)
	return nil
}

// Remove deletes every record of the image refOrID means. The last deletion is synchronous: the
// image's content and snapshots are collected (unless something else holds them) before it
// returns.
func (s *Service) Remove(ctx context.Context, refOrID string) error {
	s.removeMu.Lock()
	defer s.removeMu.Unlock()
	ctx = s.nsCtx(ctx)
	img, ok := s.index.lookup(refOrID)
	if !ok {
		// Not indexed: maybe a record the index could not read (another platform, missing
		// content). A record by exactly that name is removed.
		for _, name := range candidateNames(refOrID) {
			if err := s.deleteRecord(ctx, name, false); err != nil {
				return internalStatus(fmt.Sprintf("remove image %q", refOrID), err)
			}
		}
		return nil
	}
	// The ID record last: until then the image stays findable by its ID.
	names := make([]string, 0, len(img.Names))
	hasID := false
	for _, n := range img.Names {
		if n == img.ID {
			hasID = true
		} else {
			names = append(names, n)
		}
	}
	if hasID {
		names = append(names, img.ID)
	}
	for i, name := range names {
		if err := s.deleteRecord(ctx, name, i == len(names)-1); err != nil {
			return internalStatus(fmt.Sprintf("remove image %s: record %q", img.ID, name), err)
		}
	}
	logrus.WithFields(logrus.Fields{"image": refOrID, "id": img.ID, "names": img.Names}).Info("removed image")
	return nil
}
