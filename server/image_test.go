package server

import (
	"context"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/imageservice"
)

// The image service of the daemon is what the ImageServer forwards to.
var _ ImageService = (*imageservice.Service)(nil)

// fakeImageService records the requests that reach it.
type fakeImageService struct {
	calls  []string
	err    error
	images []*runtime.Image
}

func (f *fakeImageService) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	f.calls = append(f.calls, "PullImage "+r.GetImage().GetImage())
	if f.err != nil {
		return nil, f.err
	}
	return &runtime.PullImageResponse{ImageRef: "sha256:abc"}, nil
}

func (f *fakeImageService) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	f.calls = append(f.calls, "ListImages")
	return &runtime.ListImagesResponse{Images: f.images}, f.err
}

func (f *fakeImageService) StreamImages(r *runtime.StreamImagesRequest, s grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	f.calls = append(f.calls, "StreamImages")
	if f.err != nil {
		return f.err
	}
	for _, img := range f.images {
		if err := s.Send(&runtime.StreamImagesResponse{Images: []*runtime.Image{img}}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeImageService) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	f.calls = append(f.calls, "ImageStatus "+r.GetImage().GetImage())
	return &runtime.ImageStatusResponse{}, f.err
}

func (f *fakeImageService) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	f.calls = append(f.calls, "RemoveImage "+r.GetImage().GetImage())
	return &runtime.RemoveImageResponse{}, f.err
}

func (f *fakeImageService) ImageFsInfo(ctx context.Context, r *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	f.calls = append(f.calls, "ImageFsInfo")
	return &runtime.ImageFsInfoResponse{}, f.err
}

func TestImageServerValidates(t *testing.T) {
	ctx := context.Background()
	fake := &fakeImageService{}
	s := NewImageServer(fake)
	invalid := []struct {
		name string
		call func() error
	}{
		{"pull nil spec", func() error { _, err := s.PullImage(ctx, &runtime.PullImageRequest{}); return err }},
		{"pull empty", func() error {
			_, err := s.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{}})
			return err
		}},
		{"status nil spec", func() error { _, err := s.ImageStatus(ctx, &runtime.ImageStatusRequest{}); return err }},
		{"status empty", func() error {
			_, err := s.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{}})
			return err
		}},
		{"remove nil spec", func() error { _, err := s.RemoveImage(ctx, &runtime.RemoveImageRequest{}); return err }},
		{"remove empty", func() error {
			_, err := s.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{}})
			return err
		}},
	}
	for _, c := range invalid {
		if err := c.call(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", c.name, err)
		}
	}
	if len(fake.calls) != 0 {
		t.Errorf("invalid requests reached the service: %v", fake.calls)
	}
}

func TestImageServerForwards(t *testing.T) {
	ctx := context.Background()
	fake := &fakeImageService{images: []*runtime.Image{{Id: "sha256:a"}, {Id: "sha256:b"}}}
	s := NewImageServer(fake)
	resp, err := s.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox"}})
	if err != nil || resp.GetImageRef() != "sha256:abc" {
		t.Fatalf("pull: %v %v", resp, err)
	}
	list, err := s.ListImages(ctx, nil)
	if err != nil || len(list.GetImages()) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := s.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "sha256:a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImageFsInfo(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"PullImage busybox", "ListImages", "ImageStatus busybox", "RemoveImage sha256:a", "ImageFsInfo"}
	if len(fake.calls) != len(want) {
		t.Fatalf("calls %v", fake.calls)
	}
	for i := range want {
		if fake.calls[i] != want[i] {
			t.Errorf("call %d = %q, want %q", i, fake.calls[i], want[i])
		}
	}
}

func TestImageServerErrors(t *testing.T) {
	ctx := context.Background()
	fake := &fakeImageService{err: status.Error(codes.NotFound, "no such repo")}
	s := NewImageServer(fake)
	_, err := s.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "x"}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("status kept: %v", err)
	}
	fake.err = errors.New("plain")
	_, err = s.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "x"}})
	if status.Code(err) != codes.Internal {
		t.Errorf("plain error: %v", err)
	}
	fake.err = context.DeadlineExceeded
	_, err = s.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "x"}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("deadline: %v", err)
	}
}

// The server registered on gRPC, with the streaming call.
func TestImageServerOverGRPC(t *testing.T) {
	fake := &fakeImageService{images: []*runtime.Image{{Id: "sha256:a"}, {Id: "sha256:b"}, {Id: "sha256:c"}}}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	runtime.RegisterImageServiceServer(srv, NewImageServer(fake))
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := runtime.NewImageServiceClient(conn)
	ctx := context.Background()
	stream, err := client.StreamImages(ctx, &runtime.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		n += len(resp.GetImages())
	}
	if n != 3 {
		t.Errorf("streamed %d images", n)
	}
	_, err = client.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ""}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty pull over gRPC: %v", err)
	}
}
